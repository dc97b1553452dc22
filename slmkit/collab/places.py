"""Place names the privacy proxy hides without a tagger: countries, states and regions, and large or well-known cities.

Words that are also common English words (Nice, Reading, Split, Mobile, ...) are left out, so a
match is a place in nearly every sentence. Matching is whole-word, in title case or in capitals.
"""

COUNTRIES = """
Afghanistan Albania Algeria Andorra Angola Argentina Armenia Australia Austria Azerbaijan Bahamas Bahrain
Bangladesh Barbados Belarus Belgium Belize Benin Bhutan Bolivia Bosnia Botswana Brazil Brunei Bulgaria Burundi
Cambodia Cameroon Canada Chile China Colombia Comoros Congo Croatia Cuba Cyprus Czechia Denmark Djibouti
Dominica Ecuador Egypt Eritrea Estonia Eswatini Ethiopia Fiji Finland France Gabon Gambia Georgia Germany
Ghana Greece Greenland Grenada Guatemala Guinea Guyana Haiti Honduras Hungary Iceland India Indonesia Iran
Iraq Ireland Israel Italy Jamaica Japan Jordan Kazakhstan Kenya Kiribati Kosovo Kuwait Kyrgyzstan Laos Latvia
Lebanon Lesotho Liberia Libya Liechtenstein Lithuania Luxembourg Madagascar Malawi Malaysia Maldives Mali
Malta Mauritania Mauritius Mexico Micronesia Moldova Monaco Mongolia Montenegro Morocco Mozambique Myanmar
Namibia Nauru Nepal Netherlands Nicaragua Niger Nigeria Norway Oman Pakistan Palau Palestine Panama Paraguay
Peru Philippines Poland Portugal Qatar Romania Russia Rwanda Samoa Senegal Serbia Seychelles Singapore
Slovakia Slovenia Somalia Spain Sudan Suriname Sweden Switzerland Syria Taiwan Tajikistan Tanzania Thailand
Togo Tonga Trinidad Tobago Tunisia Turkey Turkmenistan Tuvalu Uganda Ukraine Uruguay Uzbekistan Vanuatu
Venezuela Vietnam Yemen Zambia Zimbabwe England Scotland Wales Britain Holland Deutschland España Italia
Sverige Norge Danmark Suomi Polska Österreich Schweiz Suisse Nederland Belgique België Brasil México Éire
"""

CITIES = """
London Paris Berlin Madrid Rome Lisbon Dublin Amsterdam Rotterdam Brussels Antwerp Vienna Zurich Zürich Geneva
Genève Basel Bern Munich München Hamburg Frankfurt Cologne Köln Stuttgart Düsseldorf Dresden Leipzig Hanover
Hannover Nuremberg Bremen Copenhagen København Aarhus Odense Aalborg Stockholm Gothenburg Göteborg Malmö
Uppsala Oslo Bergen Trondheim Stavanger Helsinki Espoo Tampere Turku Oulu Reykjavik Reykjavík Tallinn Riga
Vilnius Warsaw Warszawa Krakow Kraków Gdansk Gdańsk Wroclaw Wrocław Poznan Poznań Prague Praha Brno Bratislava
Budapest Debrecen Ljubljana Zagreb Belgrade Beograd Sarajevo Skopje Sofia Bucharest Bucureşti Chisinau Kyiv
Kiev Kharkiv Odesa Odessa Lviv Minsk Moscow Petersburg Novosibirsk Athens Thessaloniki Nicosia Limassol
Valletta Istanbul Ankara Izmir Barcelona Valencia Seville Sevilla Bilbao Malaga Málaga Zaragoza Porto Coimbra
Milan Milano Naples Napoli Turin Torino Florence Firenze Venice Venezia Bologna Genoa Palermo Marseille Lyon
Toulouse Bordeaux Lille Strasbourg Nantes Montpellier Rennes Grenoble Luxembourg Monaco Edinburgh Glasgow
Manchester Liverpool Birmingham Leeds Sheffield Bristol Cardiff Belfast Newcastle Nottingham Leicester
Southampton Brighton Oxford Cambridge Aberdeen Dundee Cork Galway Limerick Tokyo Osaka Kyoto Yokohama Nagoya
Sapporo Kobe Fukuoka Hiroshima Seoul Busan Incheon Beijing Shanghai Guangzhou Shenzhen Chengdu Wuhan Tianjin
Chongqing Hangzhou Nanjing Xian Taipei Kaohsiung Macau Singapore Bangkok Hanoi Saigon Manila Cebu Jakarta
Surabaya Bandung Penang Yangon Dhaka Kathmandu Colombo Karachi Lahore Islamabad Delhi Mumbai Bombay Kolkata
Calcutta Chennai Madras Bangalore Bengaluru Hyderabad Ahmedabad Pune Jaipur Lucknow Kabul Tehran Baghdad
Riyadh Jeddah Dubai Doha Kuwait Manama Muscat Amman Beirut Damascus Jerusalem Haifa Tashkent Almaty Astana
Baku Tbilisi Yerevan Cairo Alexandria Casablanca Rabat Marrakech Tunis Algiers Tripoli Khartoum Lagos Abuja
Accra Dakar Nairobi Mombasa Kampala Kigali Luanda Kinshasa Johannesburg Pretoria Durban Harare Lusaka Maputo
Windhoek Gaborone Antananarivo Toronto Montreal Montréal Vancouver Calgary Edmonton Ottawa Winnipeg Quebec
Québec Halifax Victoria Chicago Houston Phoenix Philadelphia Dallas Austin Jacksonville Seattle Denver Boston
Detroit Nashville Memphis Portland Baltimore Milwaukee Albuquerque Tucson Fresno Sacramento Atlanta Miami
Tampa Orlando Minneapolis Cleveland Pittsburgh Cincinnati Indianapolis Columbus Charlotte Raleigh Richmond
Honolulu Anchorage Omaha Oakland Brooklyn Manhattan Washington Guadalajara Monterrey Tijuana Havana Kingston
Bogota Bogotá Medellin Medellín Cali Caracas Quito Guayaquil Lima Cusco Santiago Valparaiso Valparaíso Cordoba
Córdoba Rosario Mendoza Montevideo Asuncion Asunción Brasilia Brasília Salvador Fortaleza Recife Curitiba
Manaus Belém Goiânia Sydney Melbourne Brisbane Perth Adelaide Canberra Hobart Darwin Auckland Wellington
Christchurch Suva
"""

STATES = """
Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Hawaii Idaho Illinois Indiana
Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota Mississippi Missouri Montana
Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah Vermont Virginia Wisconsin Wyoming
Ontario Alberta Manitoba Saskatchewan Bavaria Bayern Catalonia Andalusia Tuscany Lombardy Normandy Brittany
Provence Flanders Wallonia Queensland Tasmania
"""

MULTI_WORD = (
    'Burkina Faso',
    'Costa Rica',
    'Czech Republic',
    'El Salvador',
    'New Zealand',
    'North Korea',
    'North Macedonia',
    'Papua New Guinea',
    'San Marino',
    'Saudi Arabia',
    'Sierra Leone',
    'South Africa',
    'South Korea',
    'South Sudan',
    'Sri Lanka',
    'United Arab Emirates',
    'United Kingdom',
    'United States',
    'Hong Kong',
    'Ho Chi Minh City',
    'Kuala Lumpur',
    'New Delhi',
    'Tel Aviv',
    'Addis Ababa',
    'Dar es Salaam',
    'Cape Town',
    'New York',
    'Los Angeles',
    'San Antonio',
    'San Diego',
    'San Francisco',
    'Las Vegas',
    'Salt Lake City',
    'Kansas City',
    'St. Louis',
    'New Orleans',
    'Mexico City',
    'Buenos Aires',
    'La Paz',
    'Sao Paulo',
    'São Paulo',
    'Rio de Janeiro',
    'New Hampshire',
    'New Jersey',
    'New Mexico',
    'North Carolina',
    'North Dakota',
    'Rhode Island',
    'South Carolina',
    'South Dakota',
    'West Virginia',
)

PLACES = sorted({*COUNTRIES.split(), *CITIES.split(), *STATES.split(), *MULTI_WORD}, key=len, reverse=True)
